// An interface (not a module).
interface top_module(input [7:0] a, input [7:0] b, output [7:0] y);
  assign y = a ^ b;
endinterface
