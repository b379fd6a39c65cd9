module top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  // bytes that are not UTF-8: ÿþÃ( €
  assign y = a ^ b;
endmodule
